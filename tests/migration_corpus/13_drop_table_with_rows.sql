-- expect: breaking-change:error, data-loss:error:22
DROP TABLE chat_messages;
