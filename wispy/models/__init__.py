from wispy.models.acoustic import (CONVDFSMN_SMALL, ZOO, ConvDFSMN, ConvGRUModel, DFSMNLayer, GRUAcousticModel, LSTMAcousticModel,
                       Wav2Letter, convdfsmn, convdfsmn_small, demo_features, demo_model, example_input, gru_rtmobile,
                       lstm_512, wav2letter)
from wispy.models.counting import count_macs, format_summary, summary

__all__ = ["ZOO", "CONVDFSMN_SMALL", "ConvDFSMN", "ConvGRUModel", "DFSMNLayer", "demo_features", "demo_model",
           "GRUAcousticModel", "LSTMAcousticModel", "Wav2Letter", "convdfsmn", "convdfsmn_small", "gru_rtmobile",
           "lstm_512", "wav2letter", "example_input", "summary", "count_macs", "format_summary"]
