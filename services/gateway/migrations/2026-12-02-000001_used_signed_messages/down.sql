DROP TABLE used_signed_messages;
