"""Resizes an uploaded image (example function)."""


def handler(event, context):
    return {"statusCode": 200, "body": f"resized {event.get('key', '?')}"}
