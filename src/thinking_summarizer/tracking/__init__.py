"""MLflow: the store, the hook that owns one parent run per `kedro run` (stages as child runs), and the dataset nodes log through."""
