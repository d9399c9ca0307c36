DROP TABLE callbacks;
DROP TABLE tx_mempool_double_spend_attempts;
DROP TABLE tx_block_double_spends;
DROP TABLE chain_tip;
DROP TABLE tx_blocks;
DROP INDEX txs_unregistered;
ALTER TABLE txs DROP COLUMN registered_at;
