-- expect: breaking-change:error, data-loss:error:26
DROP TABLE chat_messages;
