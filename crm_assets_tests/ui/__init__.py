"""The Dagster UI as users meet it: the webserver, its GraphQL API and pages in a real browser."""
