DROP TABLE policy_quotes; DROP TABLE nodes;
