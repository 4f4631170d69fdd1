"""listenctl and the other command-line clients of the listend daemon (installed as ``listend_ctl``)."""
