-- The role and database of fheserve, on Debian's PostgreSQL
-- (apt-get install postgresql; the postgresql service runs it):
--   sudo -u postgres psql -v password="'...'" -f setup.sql
-- The API nodes and workers migrate the schema themselves on start, under
-- an advisory lock. Each process holds two pools (the store's and the
-- audit log's) of up to max(4, cores) connections: raise max_connections
-- in postgresql.conf above 2 x processes x cores (docs/scaling.md).
CREATE ROLE fheserve LOGIN PASSWORD :password;
CREATE DATABASE fheserve OWNER fheserve;
