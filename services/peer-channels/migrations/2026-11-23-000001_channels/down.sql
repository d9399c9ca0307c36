DROP TABLE message_marks;
DROP TABLE messages;
DROP TABLE channel_tokens;
DROP TABLE channels;
