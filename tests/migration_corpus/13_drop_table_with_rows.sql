-- expect: breaking-change:error, data-loss:error
DROP TABLE chat_messages;
