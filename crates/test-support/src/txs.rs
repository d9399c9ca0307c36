//! Many transactions quickly, without signing: a wallet coin fanned out into `OP_TRUE` outputs
//! (non-standard, which regtest accepts), each spent by a transaction with an empty unlocking
//! script. For tests and benchmarks that need blocks of thousands of transactions.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::BitcoindNode;

/// The locking script anyone can spend.
pub const OP_TRUE: &[u8] = &[0x51];

/// A transaction built field by field (version 1, lock time 0, final sequences).
#[derive(Debug, Clone, Default)]
pub struct RawTx {
    /// Spent outpoints (txid in display order) with their unlocking scripts.
    pub inputs: Vec<(String, u32, Vec<u8>)>,
    /// Outputs: satoshis and locking script.
    pub outputs: Vec<(u64, Vec<u8>)>,
}

fn varint(out: &mut Vec<u8>, n: usize) {
    let n = n as u64;
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

impl RawTx {
    /// The serialized transaction.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.inputs.len() * 41 + self.outputs.len() * 10);
        out.extend_from_slice(&1u32.to_le_bytes());
        varint(&mut out, self.inputs.len());
        for (txid, vout, script) in &self.inputs {
            let mut hash = hex_decode(txid);
            hash.reverse();
            out.extend_from_slice(&hash);
            out.extend_from_slice(&vout.to_le_bytes());
            varint(&mut out, script.len());
            out.extend_from_slice(script);
            out.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        varint(&mut out, self.outputs.len());
        for (value, script) in &self.outputs {
            out.extend_from_slice(&value.to_le_bytes());
            varint(&mut out, script.len());
            out.extend_from_slice(script);
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    /// Hex of [`Self::to_bytes`].
    pub fn to_hex(&self) -> String {
        hex_encode(&self.to_bytes())
    }
}

/// The txid (display order) of a serialized transaction.
pub fn txid_of(bytes: &[u8]) -> String {
    let mut h = Sha256::digest(Sha256::digest(bytes)).to_vec();
    h.reverse();
    hex_encode(&h)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A transaction spending output `vout` (worth `value`) of `parent`, an `OP_TRUE` output, to one
/// `OP_TRUE` output paying `fee`, with an optional data output of `data_len` bytes.
pub fn spend_op_true(parent: &str, vout: u32, value: u64, fee: u64, data_len: usize) -> String {
    let mut outputs = vec![(value - fee, OP_TRUE.to_vec())];
    if data_len > 0 {
        let mut script = vec![0x00, 0x6a, 0x4e];
        script.extend_from_slice(&(data_len as u32).to_le_bytes());
        script.extend(std::iter::repeat_n(0xab, data_len));
        outputs.push((0, script));
    }
    RawTx { inputs: vec![(parent.to_owned(), vout, Vec::new())], outputs }.to_hex()
}

impl BitcoindNode {
    /// Spends the wallet coin `coin` into `n` `OP_TRUE` outputs of `value` satoshis each (the rest,
    /// less a 1 sat/byte fee, back to the wallet), signed by the wallet and sent; returns the txid.
    pub async fn fan_out(&self, coin: &Value, n: usize, value: u64) -> String {
        let amount = (coin["amount"].as_f64().unwrap() * 1e8).round() as u64;
        let change_address = self.new_address().await;
        let change_script = self.rpc("validateaddress", json!([change_address])).await["scriptPubKey"]
            .as_str()
            .map(hex_decode)
            .unwrap();
        let mut tx = RawTx {
            inputs: vec![(
                coin["txid"].as_str().unwrap().to_owned(),
                coin["vout"].as_u64().unwrap() as u32,
                vec![],
            )],
            outputs: vec![(value, OP_TRUE.to_vec()); n],
        };
        let fee = tx.to_bytes().len() as u64 + 200;
        tx.outputs.push((amount - value * n as u64 - fee, change_script));
        let signed = self.rpc("signrawtransaction", json!([tx.to_hex()])).await;
        assert_eq!(signed["complete"], true, "{signed}");
        self.rpc("sendrawtransaction", json!([signed["hex"]])).await.as_str().unwrap().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spend_serializes_like_the_node() {
        let hex = spend_op_true(&"11".repeat(32), 2, 1000, 100, 0);
        // version | 1 input | outpoint (internal order) | empty script | sequence | 1 output | value | script | lock time
        let expected = format!(
            "01000000{}{}{}{}{}{}{}",
            "01",
            "11".repeat(32),
            "02000000",
            "00ffffffff",
            "01",
            "8403000000000000",
            "015100000000"
        );
        assert_eq!(hex, expected);
        assert_eq!(txid_of(&hex_decode(&hex)).len(), 64);
    }
}
