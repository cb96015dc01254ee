-- expect: data-loss:error
TRUNCATE chat_messages;
