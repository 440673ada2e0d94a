"""ROS-free real-arm adapter: Robot protocol, safety layer, teleop ingestion, atomic-step executor."""
