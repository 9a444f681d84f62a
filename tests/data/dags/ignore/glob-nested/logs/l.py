# glob-nested/logs/l.py
