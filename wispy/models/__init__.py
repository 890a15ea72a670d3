from .acoustic import (ZOO, GRUAcousticModel, LSTMAcousticModel, Wav2Letter, example_input, gru_rtmobile,
                       lstm_512, wav2letter)

__all__ = ["ZOO", "GRUAcousticModel", "LSTMAcousticModel", "Wav2Letter", "gru_rtmobile", "lstm_512",
           "wav2letter", "example_input"]
