# glob-nested/local.py
