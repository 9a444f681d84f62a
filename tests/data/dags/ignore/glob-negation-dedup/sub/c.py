# glob-negation-dedup/sub/c.py
