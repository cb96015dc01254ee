-- expect: blocking-maintenance:error:30
ALTER TABLE products SET TABLESPACE fast_disks;
