"""Stage 1: capture containers (pcap, pcapng) and the splitter that cuts them into chunks."""
