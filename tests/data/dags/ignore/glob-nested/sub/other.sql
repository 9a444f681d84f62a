# glob-nested/sub/other.sql
