"""Voice notes: Whisper transcription on the host (faster-whisper over CTranslate2, int8)."""
