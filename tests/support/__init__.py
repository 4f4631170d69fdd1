"""Real parts for the tests: buses, daemons, X and Wayland servers, PulseAudio, portals, trays, IBus, GNOME.

Each module starts one kind of real thing and ends it; fixtures in
``tests/conftest.py`` hand them to tests. Nothing here is a mock of
listend: stubs stand only for other people's services that cannot run here
(a desktop portal's permission dialog, a tray host), and they speak the real
protocol on a real bus.
"""
