# glob-nested/nested/local.py
