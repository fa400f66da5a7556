"""The card-payment risk workload: schema, preprocessing, features, members, aggregation."""
