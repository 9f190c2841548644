"""The DynamoDB backend: DynamoDBStore (store.py) on one control table, one module per concern."""
