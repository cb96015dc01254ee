-- expect: data-loss:error:26
TRUNCATE chat_messages;
