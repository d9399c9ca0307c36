DROP TABLE master_tokens; DROP TABLE accounts;
