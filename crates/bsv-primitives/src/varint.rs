//! Bitcoin's variable-length integer ("CompactSize"), read with the same strictness as the node.

use std::io::{self, Read, Write};

/// Reads a CompactSize integer, refusing non-canonical encodings (as the node does) with
/// `ErrorKind::InvalidData`.
pub fn read_varint<R: Read + ?Sized>(reader: &mut R) -> io::Result<u64> {
    let mut first = [0u8; 1];
    reader.read_exact(&mut first)?;
    let value = match first[0] {
        0xfd => {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b)?;
            u64::from(u16::from_le_bytes(b))
        }
        0xfe => {
            let mut b = [0u8; 4];
            reader.read_exact(&mut b)?;
            u64::from(u32::from_le_bytes(b))
        }
        0xff => {
            let mut b = [0u8; 8];
            reader.read_exact(&mut b)?;
            u64::from_le_bytes(b)
        }
        n => u64::from(n),
    };
    if varint_size(value) != encoded_size(first[0]) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "non-canonical CompactSize"));
    }
    Ok(value)
}

fn encoded_size(prefix: u8) -> u64 {
    match prefix {
        0xfd => 3,
        0xfe => 5,
        0xff => 9,
        _ => 1,
    }
}

/// Writes a CompactSize integer in its shortest encoding.
pub fn write_varint<W: Write + ?Sized>(writer: &mut W, n: u64) -> io::Result<()> {
    match n {
        0..=0xfc => writer.write_all(&[n as u8]),
        0xfd..=0xffff => {
            writer.write_all(&[0xfd])?;
            writer.write_all(&(n as u16).to_le_bytes())
        }
        0x1_0000..=0xffff_ffff => {
            writer.write_all(&[0xfe])?;
            writer.write_all(&(n as u32).to_le_bytes())
        }
        _ => {
            writer.write_all(&[0xff])?;
            writer.write_all(&n.to_le_bytes())
        }
    }
}

/// Encoded size of `n` in bytes.
pub fn varint_size(n: u64) -> u64 {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_width() {
        for n in [0u64, 0xfc, 0xfd, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let mut buf = Vec::new();
            write_varint(&mut buf, n).unwrap();
            assert_eq!(buf.len() as u64, varint_size(n));
            assert_eq!(read_varint(&mut &buf[..]).unwrap(), n);
        }
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        for bytes in [&[0xfd, 0x10, 0x00][..], &[0xfe, 0xff, 0xff, 0, 0], &[0xff, 1, 0, 0, 0, 0, 0, 0, 0]] {
            let err = read_varint(&mut &bytes[..]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn truncated_varint_is_an_eof_error() {
        let err = read_varint(&mut &[0xffu8, 1, 2][..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
