# glob-nested/keep.sql
