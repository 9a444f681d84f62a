# glob-nested/sub/mod.py
