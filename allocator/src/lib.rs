//! IP address allocation for LoadBalancer Services (issue 3).
