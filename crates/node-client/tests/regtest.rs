//! Against a real regtest `bitcoind`: our parser, Merkle code and ZMQ subscriber agree with the node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bsv_primitives::{BlockHash, BlockReader, MerkleTree, ParseLimits, Transaction, Txid};
use node_client::rpc_types::{SendRawTx, TxOutRef};
use node_client::{RpcClient, RpcConfig, ZmqEvent, ZmqNotice, ZmqOptions, ZmqSubscription, ZmqTopic};
use serde_json::json;
use test_support::BitcoindNode;

fn client(node: &BitcoindNode) -> RpcClient {
    RpcClient::new(RpcConfig::new(
        node.rpc_url().parse().unwrap(),
        node.rpc_user.clone(),
        node.rpc_password.clone().into(),
    ))
    .unwrap()
}

/// Streams a block over RPC into `BlockReader` on a blocking thread; returns txids and summary.
async fn stream_block(rpc: &RpcClient, hash: &BlockHash) -> (Vec<Txid>, bsv_primitives::BlockSummary) {
    let reader = rpc.get_block_stream(hash).await.unwrap();
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || {
        let mut block = BlockReader::new(bridge, ParseLimits::default()).unwrap();
        let mut txids = Vec::new();
        while let Some(tx) = block.next_tx() {
            txids.push(tx.unwrap().txid());
        }
        (txids, block.finish().unwrap())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn parser_merkle_proofs_and_zmq_agree_with_a_real_node() {
    test_support::init_test_tracing();
    let node = BitcoindNode::start().await;
    let rpc = client(&node);

    // A wallet transaction: our txid equals the node's.
    let txid: Txid = node.send_to_new_address(1.5).await.parse().unwrap();
    let raw = rpc.get_raw_transaction(&txid).await.unwrap();
    let tx = Transaction::parse(&raw).unwrap();
    assert_eq!(tx.txid(), txid);
    assert_eq!(tx.size(), raw.len() as u64);
    assert!(rpc.get_raw_mempool().await.unwrap().contains(&txid));

    // gettxouts sees the new output in the mempool.
    let outs = rpc
        .get_tx_outs(
            &[TxOutRef { txid, n: 0 }],
            &["scriptPubKeyLen", "value", "isStandard", "confirmations"],
            true,
        )
        .await
        .unwrap();
    assert_eq!(outs.txouts.len(), 1);
    assert_eq!(outs.txouts[0].confirmations, Some(0));
    assert_eq!(outs.txouts[0].is_standard, Some(true));

    // More transactions, so the block has an odd count and the proofs have "*" nodes.
    let mut sent = vec![txid];
    for _ in 0..5 {
        sent.push(node.send_to_new_address(0.25).await.parse().unwrap());
    }

    // Subscribe before mining; a hashblock event must arrive through our subscriber.
    let mut zmq = ZmqSubscription::start(node.zmq_endpoint(), &[ZmqTopic::HashBlock], ZmqOptions::default());
    let connected = tokio::time::timeout(Duration::from_secs(10), zmq.recv()).await.unwrap();
    assert_eq!(connected, Some(ZmqNotice::Connected));
    let hash: BlockHash = node.generate(1).await[0].parse().unwrap();
    let mut mined = vec![hash];
    loop {
        // ZMQ's subscription can reach the publisher a moment after the connection: a block
        // published in between is missed by design, so mine again until one arrives.
        match tokio::time::timeout(Duration::from_secs(3), zmq.next_event()).await {
            Ok(Some(ZmqEvent::HashBlock(h))) => {
                assert!(mined.contains(&h), "event for a block we did not mine");
                break;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {
                assert!(mined.len() < 5, "no hashblock event after {} blocks", mined.len());
                mined.push(node.generate(1).await[0].parse().unwrap());
            }
        }
    }

    // Stream the block; the Merkle root we compute equals the header's (finish() checks it) and
    // the node's getblockheader.
    let (txids, summary) = stream_block(&rpc, &hash).await;
    assert_eq!(summary.header.hash(), hash);
    assert_eq!(txids.len(), 7, "coinbase + 6 wallet txs");
    for t in &sent {
        assert!(txids.contains(t));
    }
    let info = rpc.get_block_header(&hash).await.unwrap();
    let tree = MerkleTree::new(&txids).unwrap();
    assert_eq!(Txid::from_internal(tree.root()).to_string(), info.merkleroot);
    let header = rpc.get_block_header_raw(&hash).await.unwrap();
    assert_eq!(header, summary.header);

    // Our TSC proof for every tx equals the node's getmerkleproof2 and verifies against the header.
    for (i, t) in txids.iter().enumerate() {
        let ours = tree.tsc_proof(i, hash).unwrap();
        let theirs = rpc.get_merkle_proof2(&hash, t).await.unwrap();
        assert_eq!(ours, theirs, "proof of tx {i}");
        ours.verify_against_header(&header).unwrap();
        let with_header = rpc.get_merkle_proof2_with_target(&hash, t, false, "header").await.unwrap();
        with_header.verify_against_header(&header).unwrap();
    }

    // An output of the last (unspent) transaction is confirmed by every block mined since.
    let last = *sent.last().unwrap();
    let outs = rpc
        .get_tx_outs(
            &[TxOutRef { txid: last, n: 0 }, TxOutRef { txid: last, n: 9 }],
            &["confirmations"],
            false,
        )
        .await
        .unwrap();
    assert_eq!(outs.txouts[0].confirmations, Some(mined.len() as i64), "{outs:?}");
    assert_eq!(outs.txouts[1].error.as_deref(), Some("missing"), "{outs:?}");
}

#[tokio::test]
async fn rpc_errors_are_typed_and_batches_report_conflicts() {
    let node = BitcoindNode::start().await;
    let rpc = client(&node);

    let err = rpc.send_raw_transaction("zz").await.unwrap_err();
    assert_eq!(err.rpc_code(), Some(-22), "{err}");
    let err = rpc.get_block_header(&BlockHash::from_internal([1; 32])).await.unwrap_err();
    assert_eq!(err.rpc_code(), Some(-5), "{err}");

    // Two transactions spending the same coin: the second is refused with collidedWith.
    let unspent = node.rpc("listunspent", json!([1])).await;
    let coin = &unspent[0];
    let amount = coin["amount"].as_f64().unwrap();
    let mut signed = Vec::new();
    for _ in 0..2 {
        let to = node.new_address().await;
        let raw = node
            .rpc(
                "createrawtransaction",
                json!([[{"txid": coin["txid"], "vout": coin["vout"]}], {to: ((amount - 0.001) * 1e8).round() / 1e8}]),
            )
            .await;
        let s = node.rpc("signrawtransaction", json!([raw])).await;
        signed.push(s["hex"].as_str().unwrap().to_owned());
    }
    let batch: Vec<SendRawTx> = signed
        .iter()
        .map(|hex| SendRawTx {
            hex: hex.clone(),
            allowhighfees: false,
            dontcheckfee: false,
            listunconfirmedancestors: false,
            config: None,
        })
        .collect();
    let first = rpc.send_raw_transactions(&batch[..1]).await.unwrap();
    assert!(first.invalid.is_empty(), "{first:?}");
    let second = rpc.send_raw_transactions(&batch[1..]).await.unwrap();
    assert_eq!(second.invalid.len(), 1, "{second:?}");
    let rejected = &second.invalid[0];
    assert_eq!(rejected.reject_code, 258, "{rejected:?}");
    let first_txid = Transaction::parse_hex(&signed[0]).unwrap().txid();
    assert_eq!(rejected.collided_with[0].txid, first_txid);
    // Sending the first again: the node knows it.
    let again = rpc.send_raw_transactions(&batch[..1]).await.unwrap();
    assert!(
        again.known.contains(&first_txid) || again.invalid.iter().any(|i| i.reject_code == 257),
        "{again:?}"
    );

    // Chain and network info parse.
    let chain = rpc.get_blockchain_info().await.unwrap();
    assert_eq!(chain.chain, "regtest");
    assert_eq!(chain.blocks, 101);
    let net = rpc.get_network_info().await.unwrap();
    assert!(net.version >= 101_001_000, "{}", net.version);
    let zmq = rpc.active_zmq_notifications().await.unwrap();
    assert!(zmq.iter().any(|n| n.notification == "pubhashblock" && n.address == node.zmq_endpoint()));
}

#[tokio::test]
async fn an_unreachable_node_is_a_transport_error() {
    let port = test_support::free_port();
    let rpc = RpcClient::new(RpcConfig::new(
        format!("http://127.0.0.1:{port}").parse().unwrap(),
        "u",
        "p".to_owned().into(),
    ))
    .unwrap();
    let err = rpc.get_blockchain_info().await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
}

/// Mines blocks until a hashblock event for one of them arrives (a block published before the
/// subscription reached the publisher is missed by design).
async fn mine_until_event(node: &BitcoindNode, zmq: &mut ZmqSubscription) -> BlockHash {
    let mut mined: Vec<BlockHash> = Vec::new();
    loop {
        mined.push(node.generate(1).await[0].parse().unwrap());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(notice)) = tokio::time::timeout_at(deadline, zmq.recv()).await {
            if let ZmqNotice::Event { event: ZmqEvent::HashBlock(h), .. } = notice {
                assert!(mined.contains(&h), "event for a block we did not mine");
                return h;
            }
        }
        assert!(mined.len() < 10, "no hashblock event after {} blocks", mined.len());
    }
}

#[tokio::test]
async fn zmq_subscription_survives_a_node_restart() {
    let mut node =
        BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
            .await;
    let mut zmq = ZmqSubscription::start(node.zmq_endpoint(), &ZmqTopic::ALL, ZmqOptions::default());
    mine_until_event(&node, &mut zmq).await;

    // The publisher goes away and comes back on the same endpoint; the same subscription
    // delivers again without the caller doing anything.
    node.restart().await;
    let after = mine_until_event(&node, &mut zmq).await;
    assert_eq!(rpc_best(&node).await, after);
}

async fn rpc_best(node: &BitcoindNode) -> BlockHash {
    client(node).get_best_block_hash().await.unwrap()
}
