//! The fee check: what a transaction must pay under a quote, split into standard and data bytes,
//! and which of the caller's valid quotes it satisfies best.

use bsv_primitives::FeeBytes;
use wire_model::mapi::Fee;

use crate::quotes::Quote;

/// Whether the paid fee meets a quote's mining and relay rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeeVerdict {
    /// Paid at least the mining fee.
    pub ok_to_mine: bool,
    /// Paid at least the relay fee.
    pub ok_to_relay: bool,
}

impl FeeVerdict {
    /// The reference's score: mining counts 2, relay 1; 0 means "Not enough fees".
    pub fn score(self) -> u8 {
        2 * u8::from(self.ok_to_mine) + u8::from(self.ok_to_relay)
    }
}

/// The (mining, relay) fees `fees` require for `bytes`: each fee type prices its own bytes
/// (`standard` the standard bytes, `data` the data bytes) with integer division per type; other
/// fee types are ignored, and without a `data` fee data bytes are free.
pub fn required(fees: &[Fee], bytes: FeeBytes) -> (u64, u64) {
    let mut mining = 0u64;
    let mut relay = 0u64;
    for fee in fees {
        let size = match fee.fee_type.as_str() {
            "standard" => bytes.standard,
            "data" => bytes.data,
            _ => continue,
        };
        mining = mining.saturating_add(fee.mining_fee.fee_for(size));
        relay = relay.saturating_add(fee.relay_fee.fee_for(size));
    }
    (mining, relay)
}

/// Checks a paid fee (satoshis; inputs minus outputs) against one quote.
pub fn verdict(paid: i64, fees: &[Fee], bytes: FeeBytes) -> FeeVerdict {
    let (mining, relay) = required(fees, bytes);
    let paid = u64::try_from(paid).unwrap_or(0);
    FeeVerdict { ok_to_mine: paid >= mining, ok_to_relay: paid >= relay }
}

/// The quote with the strictly best score among `quotes` (each with its fees, parsed once per
/// request), first wins ties, and its verdict.
pub fn best<'a>(
    quotes: &[(&'a Quote, Vec<Fee>)],
    paid: i64,
    bytes: FeeBytes,
) -> Option<(&'a Quote, FeeVerdict)> {
    let mut best: Option<(&Quote, FeeVerdict)> = None;
    for (q, fees) in quotes {
        let v = verdict(paid, fees, bytes);
        if best.is_none_or(|(_, b)| v.score() > b.score()) {
            best = Some((q, v));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fees(std: (i64, i64), data: Option<(i64, i64)>) -> Vec<Fee> {
        let amount = |(s, b)| wire_model::FeeAmount::new(s, b).unwrap();
        let mut v = vec![Fee {
            fee_type: "standard".into(),
            mining_fee: amount(std),
            relay_fee: amount((std.0 / 2, std.1)),
        }];
        if let Some(d) = data {
            v.push(Fee { fee_type: "data".into(), mining_fee: amount(d), relay_fee: amount(d) });
        }
        v
    }

    #[test]
    fn standard_and_data_bytes_are_priced_separately_with_floor_division() {
        let bytes = FeeBytes { standard: 250, data: 10_000 };
        let f = fees((500, 1000), Some((1, 1000)));
        assert_eq!(required(&f, bytes), (125 + 10, 62 + 10));
        assert_eq!(verdict(135, &f, bytes), FeeVerdict { ok_to_mine: true, ok_to_relay: true });
        assert_eq!(verdict(134, &f, bytes), FeeVerdict { ok_to_mine: false, ok_to_relay: true });
        assert_eq!(verdict(71, &f, bytes).score(), 0);
        // Without a data fee, data bytes are free.
        assert_eq!(required(&fees((500, 1000), None), bytes), (125, 62));
        // A negative "fee" never passes.
        assert_eq!(verdict(-5, &fees((0, 1), None), bytes).score(), 3, "a zero rate accepts anything");
        assert_eq!(verdict(-5, &f, bytes).score(), 0);
    }
}
