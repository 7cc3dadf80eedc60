"""The handler package shipped in the Lambda image; entry: ``inference.handler.handler``."""
