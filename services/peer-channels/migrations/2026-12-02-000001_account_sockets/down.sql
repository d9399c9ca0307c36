DROP TABLE account_sockets;
