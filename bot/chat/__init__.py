"""Chat: the command grammar and admission (pure), the front-independent bot core, its handlers, the check service."""
