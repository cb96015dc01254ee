-- expect: not-transactional:error
CREATE DATABASE scratch_copy;
