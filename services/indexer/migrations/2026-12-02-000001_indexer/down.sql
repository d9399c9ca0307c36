DROP TABLE outbox;
DROP TABLE indexed_blocks;
DROP TABLE spends;
DROP TABLE spend_watches;
DROP TABLE tip_filters;
DROP TABLE tip_filter_settings;
