"""The DDB Studio web app (Gradio). Only this package imports gradio; it holds no method logic
and calls ``ddb_core.api`` for everything."""
