DROP TABLE headers;
