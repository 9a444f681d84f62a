# glob-nested/a/generated/g.py
