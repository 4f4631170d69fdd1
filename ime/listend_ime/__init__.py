"""listend's input method: live text at the cursor of any application, through IBus (``listend-ime``)."""
