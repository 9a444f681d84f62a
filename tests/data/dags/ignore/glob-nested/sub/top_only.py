# glob-nested/sub/top_only.py
