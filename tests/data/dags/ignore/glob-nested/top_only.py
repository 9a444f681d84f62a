# glob-nested/top_only.py
