-- expect: data-loss:error:22
TRUNCATE chat_messages;
