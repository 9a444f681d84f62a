# glob-nested/q.sql
