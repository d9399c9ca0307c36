DROP TABLE dsnt_counters;
