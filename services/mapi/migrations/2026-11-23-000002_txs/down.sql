DROP TABLE tx_inputs; DROP TABLE txs;
