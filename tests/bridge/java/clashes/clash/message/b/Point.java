package clash.message.b;

public class Point { public String label; }
