"""One emulator per instrument model, each speaking that model's wire protocol."""
