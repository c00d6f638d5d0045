"""The AI coach: conversations, prompts, routing, memory and the streamed answer."""
