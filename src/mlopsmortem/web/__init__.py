"""What the Datasette plugin calls: request parameters, queries on Datasette's connections,
feeds, and launching Datasette."""
