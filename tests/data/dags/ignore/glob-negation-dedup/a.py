# glob-negation-dedup/a.py
