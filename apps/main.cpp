#include <cstdio>
int main() { std::puts("siam"); return 0; }
