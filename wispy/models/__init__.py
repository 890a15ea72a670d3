from .acoustic import (ZOO, ConvGRUModel, demo_features, demo_model, GRUAcousticModel, LSTMAcousticModel, Wav2Letter, example_input, gru_rtmobile,
                       lstm_512, wav2letter)

__all__ = ["ZOO", "ConvGRUModel", "demo_features", "demo_model", "GRUAcousticModel", "LSTMAcousticModel", "Wav2Letter", "gru_rtmobile", "lstm_512",
           "wav2letter", "example_input"]
