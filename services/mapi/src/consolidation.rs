//! Consolidation transactions (many small inputs into few outputs) are accepted without a fee, as
//! the node accepts them: the reference's `IsConsolidationTxn`, with the node's parameters
//! overridden by the quote's policies.

use bsv_primitives::Transaction;
use serde_json::{Map, Value};

/// What the check needs to know of a spent output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrevoutFacts {
    /// Length of its locking script.
    pub script_len: u64,
    /// Its confirmations (0 in the mempool or in the same batch).
    pub confirmations: i64,
    /// Whether its locking script is standard.
    pub is_standard: bool,
}

/// The consolidation parameters in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Inputs per output (and locking-script bytes spent per byte created); 0 disables.
    pub factor: u64,
    /// Largest unlocking script of an input.
    pub max_input_script_size: u64,
    /// Confirmations every spent output needs.
    pub min_conf: i64,
    /// Whether non-standard spent outputs are allowed.
    pub accept_non_standard: bool,
}

fn number(map: Option<&Map<String, Value>>, key: &str) -> Option<u64> {
    map.and_then(|m| m.get(key)).and_then(Value::as_u64)
}

impl Params {
    /// The node's values (`getnetworkinfo`), overridden by the quote's policies; a 0 in the
    /// policies keeps the node's value, as in the reference.
    pub fn from(network: &Map<String, Value>, policies: Option<&Map<String, Value>>) -> Self {
        let pick = |key: &str, default: u64| {
            number(policies, key)
                .filter(|v| *v != 0)
                .or_else(|| number(Some(network), key))
                .unwrap_or(default)
        };
        let accept = policies
            .and_then(|p| p.get("acceptnonstdconsolidationinput"))
            .or_else(|| network.get("acceptnonstdconsolidationinput"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Self {
            factor: pick("minconsolidationfactor", 20),
            max_input_script_size: pick("maxconsolidationinputscriptsize", 150),
            min_conf: i64::try_from(pick("minconfconsolidationinput", 6)).unwrap_or(i64::MAX),
            accept_non_standard: accept,
        }
    }
}

/// True when `tx` is a consolidation transaction under `params`.
pub fn is_consolidation(tx: &Transaction, prevouts: &[PrevoutFacts], params: &Params) -> bool {
    let cg = tx.as_chain_gang();
    if params.factor == 0 || tx.is_coinbase() || prevouts.len() != cg.inputs.len() {
        return false;
    }
    let inputs = cg.inputs.len() as u64;
    let outputs = cg.outputs.len() as u64;
    if inputs < params.factor.saturating_mul(outputs) {
        return false;
    }
    if prevouts
        .iter()
        .any(|p| p.confirmations < params.min_conf || (!p.is_standard && !params.accept_non_standard))
    {
        return false;
    }
    if cg.inputs.iter().any(|i| i.unlock_script.0.len() as u64 > params.max_input_script_size) {
        return false;
    }
    let spent: u64 = prevouts.iter().map(|p| p.script_len).sum();
    let created: u64 = cg.outputs.iter().map(|o| o.lock_script.0.len() as u64).sum();
    spent >= params.factor.saturating_mul(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsv_primitives::write_varint;

    /// A transaction with `n_in` inputs (script of `sig` bytes) and `n_out` P2PKH-sized outputs.
    fn tx(n_in: u64, sig: usize, n_out: u64) -> Transaction {
        let mut raw = 1u32.to_le_bytes().to_vec();
        write_varint(&mut raw, n_in).unwrap();
        for i in 0..n_in {
            raw.extend([i as u8 + 1; 32]);
            raw.extend(0u32.to_le_bytes());
            write_varint(&mut raw, sig as u64).unwrap();
            raw.extend(vec![0x51; sig]);
            raw.extend(u32::MAX.to_le_bytes());
        }
        write_varint(&mut raw, n_out).unwrap();
        for _ in 0..n_out {
            raw.extend(1000u64.to_le_bytes());
            raw.push(25);
            raw.extend([0x76; 25]);
        }
        raw.extend(0u32.to_le_bytes());
        Transaction::parse(&raw).unwrap()
    }

    fn facts(n: usize, conf: i64) -> Vec<PrevoutFacts> {
        vec![PrevoutFacts { script_len: 25, confirmations: conf, is_standard: true }; n]
    }

    #[test]
    fn the_references_rule() {
        let network: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "minconsolidationfactor": 20, "maxconsolidationinputscriptsize": 150,
            "minconfconsolidationinput": 6, "acceptnonstdconsolidationinput": false
        }))
        .unwrap();
        let p = Params::from(&network, None);
        assert!(is_consolidation(&tx(20, 107, 1), &facts(20, 6), &p));
        assert!(!is_consolidation(&tx(19, 107, 1), &facts(19, 6), &p), "too few inputs");
        assert!(!is_consolidation(&tx(20, 107, 1), &facts(20, 5), &p), "too few confirmations");
        assert!(!is_consolidation(&tx(20, 151, 1), &facts(20, 6), &p), "unlocking script too large");
        let mut nonstd = facts(20, 6);
        nonstd[3].is_standard = false;
        assert!(!is_consolidation(&tx(20, 107, 1), &nonstd, &p));
        // Policies override the node: a factor of 10 makes 10 inputs enough; 0 keeps the node's.
        let policies: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"minconsolidationfactor": 10})).unwrap();
        assert!(is_consolidation(&tx(10, 107, 1), &facts(10, 6), &Params::from(&network, Some(&policies))));
        let zero: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"minconsolidationfactor": 0})).unwrap();
        assert_eq!(Params::from(&network, Some(&zero)).factor, 20);
    }
}
